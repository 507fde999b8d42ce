// EXPECT: 16:5: error: table 'acl_v4' has ternary keys: each entry needs 'priority N'
// Entries of a table with ternary keys need a priority.
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
    (10.0.0.0/8) => allow() priority 10;
    (192.168.0.0/16) => deny();
}
