// EXPECT: 11:9: error: tables are applied in the apply block, not in an action
// Tables are applied from the apply block, not from an action.
nf router {
    action fwd(port: bit<9>) { forward(port); }
    table routes {
        key = { ipv4.dst: lpm; }
        actions = { fwd; }
        default_action = fwd(0);
    }
    action route() {
        routes.apply();
    }
    apply { route(); }
}
