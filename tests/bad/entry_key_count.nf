// EXPECT: 19:5: error: table 'tunnels' has 2 key(s); this entry gives 1
// The table has two keys; the entry gives one value.
nf tunnels {
    action decap() { vxlan_decap(); }
    action reject() { drop(); }
    table tunnels {
        key = {
            ipv4.src: exact;
            vxlan.vni: exact;
        }
        actions = { decap; reject; }
        default_action = reject();
    }
    apply { tunnels.apply(); }
}

entries tunnels.tunnels {
    (192.168.1.2, 5001) => decap();
    (192.168.1.3) => decap();
}
