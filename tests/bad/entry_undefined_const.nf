// EXPECT: 18:6: error: undefined constant 'REMOTE_VTEP_IP2'
// An entry key names a constant that does not exist.
const REMOTE_VTEP_IP = 192.168.1.2;

nf tunnels {
    action decap() { vxlan_decap(); }
    action reject() { drop(); }
    table tunnels {
        key = { ipv4.src: exact; }
        actions = { decap; reject; }
        default_action = reject();
    }
    apply { tunnels.apply(); }
}

entries tunnels.tunnels {
    (REMOTE_VTEP_IP) => decap();
    (REMOTE_VTEP_IP2) => decap();
}
