// EXPECT: 5:20: error: a prefix ('203.0.113.0/24') is only allowed in table entries
// A prefix is meaningful only as a table entry key, not as a value.
nf snat {
    action rewrite() {
        ipv4.src = 203.0.113.0/24;
    }
    apply { rewrite(); }
}
