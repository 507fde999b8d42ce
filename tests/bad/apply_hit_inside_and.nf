// EXPECT: 12:31: error: '.apply().hit' / '.apply().miss' must be the whole condition of an if
// '.apply().hit' must be the whole condition of an if.
nf router {
    action fwd(port: bit<9>) { forward(port); }
    action miss_route() { to_hypervisor(2); }
    table routes {
        key = { ipv4.dst: lpm; }
        actions = { fwd; }
        default_action = fwd(0);
    }
    apply {
        if (ipv4.isValid() && routes.apply().hit) {
            fwd(1);
        }
    }
}
