// EXPECT: 16:6: error: value 300 does not fit in the key (bit<8>)
// An entry key value (300) is wider than the bit<8> key ipv4.protocol.
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
    (6) => allow();
    (300) => allow();
}
