// EXPECT: 8:4: error: stage 'tso' is already defined
// A segment and an nf share a name; stage names are one namespace.
segment tso {
    mss = auto;
    underlay_mtu = 1500;
}

nf tso {
    action nothing() { }
    apply { nothing(); }
}
