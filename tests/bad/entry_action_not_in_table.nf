// EXPECT: 22:23: error: action 'blackhole' is not one of the actions of table 'routes'
// An entry uses an action of the nf that is not in the table's actions.
nf router {
    action fwd(port: bit<9>) { forward(port); }
    action blackhole() { drop(); }
    table routes {
        key = { ipv4.dst: lpm; }
        actions = { fwd; }
        default_action = fwd(0);
    }
    apply {
        if (ipv4.isValid()) {
            routes.apply();
        } else {
            blackhole();
        }
    }
}

entries router.routes {
    (10.0.0.0/8) => fwd(1);
    (192.0.2.0/24) => blackhole();
}
