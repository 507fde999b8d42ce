// EXPECT: 14:6: error: 'fd00:1::1/64' has bits set beyond the /64 prefix; did you mean fd00:1::/64?
// fd00:1::1/64 has bits set past the 64-bit prefix.
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
    (fd00:1::1/64) => fwd(1);
}
