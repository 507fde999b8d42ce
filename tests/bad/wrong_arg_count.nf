// EXPECT: 5:9: error: forward() takes 1 argument(s); 0 given
// forward() takes one argument, the port.
nf out {
    action send() {
        forward();
    }
    apply { send(); }
}
