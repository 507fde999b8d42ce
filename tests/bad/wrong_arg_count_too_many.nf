// EXPECT: 5:9: error: push_vlan() takes 1 to 2 argument(s); 3 given
// push_vlan() takes 1 to 2 arguments (vid[, pcp]); three are given.
nf tag {
    action add_tag() {
        push_vlan(100, 3, 1);
    }
    apply { add_tag(); }
}
