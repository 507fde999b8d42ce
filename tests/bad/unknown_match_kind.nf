// EXPECT: 6:27: error: unknown match kind 'prefix'; expected one of exact, lpm, ternary, range, optional
// 'prefix' is not a match kind (exact, lpm, ternary, range, optional).
nf router {
    action fwd(port: bit<9>) { forward(port); }
    table routes {
        key = { ipv4.dst: prefix; }
        actions = { fwd; }
        default_action = fwd(0);
    }
    apply { routes.apply(); }
}
