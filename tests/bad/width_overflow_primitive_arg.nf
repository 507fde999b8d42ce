// EXPECT: 5:23: error: value 300 does not fit in argument 'reason' of to_hypervisor() (bit<8>)
// to_hypervisor()'s reason is bit<8>; 300 does not fit.
nf punt {
    action to_slow_path() {
        to_hypervisor(300);
    }
    apply { to_slow_path(); }
}
