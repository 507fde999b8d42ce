// EXPECT: 16:6: error: range 443..80 is empty (low > high)
// A range whose low end is above its high end.
nf acl {
    action allow() { }
    action deny() { drop(); }
    table by_port {
        key = { meta.l4_dst: range; }
        actions = { allow; deny; }
        default_action = deny();
    }
    apply { by_port.apply(); }
}

entries acl.by_port {
    (1024..65535) => allow() priority 10;
    (443..80) => allow() priority 20;
}
