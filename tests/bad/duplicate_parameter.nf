// EXPECT: 4:35: error: parameter 'mac' is already defined
// An action has two parameters of the same name.
nf rewrite {
    action set_macs(mac: bit<48>, mac: bit<48>) {
        ethernet.src = mac;
    }
    apply { set_macs(02:00:00:00:00:01, 02:00:00:00:00:02); }
}
