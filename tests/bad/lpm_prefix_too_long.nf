// EXPECT: 15:6: error: prefix length /33 is longer than the 32 bits of an IPv4 address
// /33 is longer than an IPv4 address.
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
    (10.0.0.1/33) => fwd(2);
}
