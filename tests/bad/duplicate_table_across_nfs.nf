// EXPECT: 15:11: error: table 'flows' is already defined in another nf; table names are global
// Table names are global: two nfs may not both have a table 'flows'.
nf count_out {
    action seen() { }
    table flows {
        key = { ipv4.src: exact; }
        actions = { seen; }
        default_action = seen();
    }
    apply { flows.apply(); }
}

nf count_in {
    action seen() { }
    table flows {
        key = { ipv4.dst: exact; }
        actions = { seen; }
        default_action = seen();
    }
    apply { flows.apply(); }
}
