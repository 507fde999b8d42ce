// EXPECT: 6:17: error: header stack 'vlan' needs an index: vlan[0].FIELD or vlan.last.FIELD
// vlan is a stack of two tags: it needs an index.
nf vlan_check {
    action keep() { }
    table by_vid {
        key = { vlan.vid: exact; }
        actions = { keep; }
        default_action = keep();
    }
    apply { by_vid.apply(); }
}
