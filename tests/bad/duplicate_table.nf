// EXPECT: 10:11: error: 'routes' is already defined in nf 'router'
// An nf declares the same table twice.
nf router {
    action fwd(port: bit<9>) { forward(port); }
    table routes {
        key = { ipv4.dst: lpm; }
        actions = { fwd; }
        default_action = fwd(0);
    }
    table routes {
        key = { ipv6.dst: lpm; }
        actions = { fwd; }
        default_action = fwd(0);
    }
    apply { routes.apply(); }
}
