// EXPECT: 15:6: error: prefix length /129 is longer than the 128 bits of an IPv6 address
// /129 is longer than an IPv6 address.
nf router6 {
    action fwd(port: bit<9>) { forward(port); }
    table routes6 {
        key = { ipv6.dst: lpm; }
        actions = { fwd; }
        default_action = fwd(0);
    }
    apply { routes6.apply(); }
}

entries router6.routes6 {
    (fd00::/16) => fwd(1);
    (fd00::1/129) => fwd(2);
}
