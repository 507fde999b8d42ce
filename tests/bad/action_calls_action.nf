// EXPECT: 6:9: error: action 'send' cannot be called from another action
// An action cannot call another action.
nf out {
    action send(port: bit<9>) { forward(port); }
    action send_uplink() {
        send(0);
    }
    apply { send_uplink(); }
}
