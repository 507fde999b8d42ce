// EXPECT: 15:6: error: '10.0.1.5/24' has bits set beyond the /24 prefix; did you mean 10.0.1.0/24?
// 10.0.1.5/24 has bits set past the 24-bit prefix.
nf router {
    action fwd(port: bit<9>) { forward(port); }
    table routes {
        key = { ipv4.dst: lpm; }
        actions = { fwd; }
        default_action = fwd(0);
    }
    apply { routes.apply(); }
}

entries router.routes {
    (10.0.0.0/8) => fwd(1);
    (10.0.1.5/24) => fwd(2);
}
