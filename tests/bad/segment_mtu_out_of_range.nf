// EXPECT: 5:5: error: underlay_mtu 500 is out of range (576 to 65535)
// An underlay MTU below the IPv4 minimum of 576.
segment tso {
    mss = auto;
    underlay_mtu = 500;
}
