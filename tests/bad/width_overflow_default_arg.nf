// EXPECT: 8:31: error: value 1000 does not fit in parameter 'dscp' of action 'mark' (bit<6>)
// A default action passes 1000 to a bit<6> parameter.
nf qos {
    action mark(dscp: bit<6>) { set_dscp(dscp); }
    table classes {
        key = { ipv4.src: exact; }
        actions = { mark; }
        default_action = mark(1000);
    }
    apply { classes.apply(); }
}
