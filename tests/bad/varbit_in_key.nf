// EXPECT: 6:17: error: varbit field 'ipv4.options' cannot be used here
// A varbit field (ipv4.options) cannot be a table key.
nf opts {
    action keep() { }
    table by_options {
        key = { ipv4.options: exact; }
        actions = { keep; }
        default_action = keep();
    }
    apply { by_options.apply(); }
}
