// EXPECT: 4:36: error: hash() can only be the whole right-hand side of an assignment
metadata { bucket: bit<16>; }
nf n {
    action a() { meta.bucket = 1 + hash(ipv4.src, ipv4.dst); }
    apply { a(); }
}
