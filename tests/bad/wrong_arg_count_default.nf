// EXPECT: 8:26: error: action 'fwd' takes 1 argument(s); 2 given
// The default action passes two arguments to a one-parameter action.
nf router {
    action fwd(port: bit<9>) { forward(port); }
    table routes {
        key = { ipv4.dst: lpm; }
        actions = { fwd; }
        default_action = fwd(0, 1);
    }
    apply { routes.apply(); }
}
