// EXPECT: 15:6: error: 'value &&& mask' is for ternary keys; 'ipv4.protocol' is exact
// 'value &&& mask' given for an exact key.
nf acl {
    action allow() { }
    action deny() { drop(); }
    table by_proto {
        key = { ipv4.protocol: exact; }
        actions = { allow; deny; }
        default_action = deny();
    }
    apply { by_proto.apply(); }
}

entries acl.by_proto {
    (6 &&& 255) => allow();
}
