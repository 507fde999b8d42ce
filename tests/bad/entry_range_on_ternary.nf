// EXPECT: 18:18: error: 'low..high' is for range keys; 'meta.l4_dst' is ternary
// 'low..high' given for a ternary key.
nf acl {
    action allow() { }
    action deny() { drop(); }
    table acl_v4 {
        key = {
            ipv4.dst: ternary;
            meta.l4_dst: ternary;
        }
        actions = { allow; deny; }
        default_action = deny();
    }
    apply { acl_v4.apply(); }
}

entries acl.acl_v4 {
    (10.0.0.0/8, 80..443) => allow() priority 10;
}
