// EXPECT: 6:17: error: index 2 is out of range for header stack 'vlan[2]'
// vlan has two elements: vlan[0] and vlan[1].
nf vlan_check {
    action keep() { }
    table by_vid {
        key = { vlan[2].vid: exact; }
        actions = { keep; }
        default_action = keep();
    }
    apply { by_vid.apply(); }
}
