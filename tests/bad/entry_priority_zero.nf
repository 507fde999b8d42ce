// EXPECT: 15:38: error: priority 0 is out of range (1 to 2147483647)
// Priorities start at 1.
nf acl {
    action allow() { }
    action deny() { drop(); }
    table acl_v4 {
        key = { ipv4.dst: ternary; }
        actions = { allow; deny; }
        default_action = deny();
    }
    apply { acl_v4.apply(); }
}

entries acl.acl_v4 {
    (10.0.0.0/8) => allow() priority 0;
}
