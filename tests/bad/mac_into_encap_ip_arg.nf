// EXPECT: 9:33: error: a MAC address is 48 bits; argument 'src_ip' of vxlan_encap() is bit<32>
// vxlan_encap's third argument is the source IP (bit<32>), given a MAC here.
const SMAC = 02:00:c0:a8:01:01;
const DMAC = 02:00:c0:a8:01:02;
const DIP = 192.168.1.2;

nf encap {
    action tunnel() {
        vxlan_encap(SMAC, DMAC, SMAC, DIP, 5001);
    }
    apply { tunnel(); }
}
