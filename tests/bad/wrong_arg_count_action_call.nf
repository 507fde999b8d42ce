// EXPECT: 5:13: error: action 'send' takes 1 argument(s); 0 given
// The apply block calls an action with too few arguments.
nf out {
    action send(port: bit<9>) { forward(port); }
    apply { send(); }
}
