// EXPECT: 9:26: error: default action 'deny' is not one of the actions of table 'acl_v4'
// The default action is an action of the nf but not listed in the table.
nf acl {
    action allow() { }
    action deny() { drop(); }
    table acl_v4 {
        key = { ipv4.dst: exact; }
        actions = { allow; }
        default_action = deny();
    }
    apply { acl_v4.apply(); }
}
