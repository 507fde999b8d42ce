// EXPECT: 16:20: error: unknown action 'forward_to'
// An entry names an action the nf does not have.
nf router {
    action fwd(port: bit<9>) { forward(port); }
    action punt(reason: bit<8>, port: bit<9>) { to_hypervisor(reason); }
    table routes {
        key = { ipv4.dst: lpm; }
        actions = { fwd; punt; }
        default_action = fwd(0);
    }
    apply { routes.apply(); }
}

entries router.routes {
    (10.0.0.0/8) => fwd(1);
    (0.0.0.0/0) => forward_to(2);
}
