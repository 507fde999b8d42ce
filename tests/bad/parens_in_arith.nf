// EXPECT: 5:20: error: unexpected '('; expected 'hash', a name, a number, a string, an IPv4 address, an address
// Arithmetic has no parentheses (they would clash with conditions).
nf ttl_set {
    action halve() {
        ipv4.ttl = (ipv4.ttl + 1) >> 1;
    }
    apply { halve(); }
}
