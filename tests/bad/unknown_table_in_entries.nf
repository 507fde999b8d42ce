// EXPECT: 13:16: error: unknown table 'routes_v4' in nf 'router'
// An entries block names a table the nf does not have.
nf router {
    action fwd(port: bit<9>) { forward(port); }
    table routes {
        key = { ipv4.dst: lpm; }
        actions = { fwd; }
        default_action = fwd(0);
    }
    apply { routes.apply(); }
}

entries router.routes_v4 {
    (10.0.0.0/8) => fwd(1);
}
