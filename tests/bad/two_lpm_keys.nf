// EXPECT: 8:23: error: table 'routes' has 2 lpm keys; at most one is allowed
// A table may have at most one lpm key.
nf router {
    action fwd(port: bit<9>) { forward(port); }
    table routes {
        key = {
            ipv4.src: lpm;
            ipv4.dst: lpm;
        }
        actions = { fwd; }
        default_action = fwd(0);
    }
    apply { routes.apply(); }
}
