// EXPECT: 13:9: error: unknown nf 'routr'
// An entries block names an nf that does not exist.
nf router {
    action fwd(port: bit<9>) { forward(port); }
    table routes {
        key = { ipv4.dst: lpm; }
        actions = { fwd; }
        default_action = fwd(0);
    }
    apply { routes.apply(); }
}

entries routr.routes {
    (10.0.0.0/8) => fwd(1);
}
