// EXPECT: 18:19: error: exact key 'vxlan.vni' cannot be a wildcard
// '_' (match anything) given for an exact key.
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
    (192.168.1.2, _) => decap();
}
