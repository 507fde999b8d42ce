// EXPECT: 3:17: error: bad IPv6 address 'fd00:::1'
// ':::' is not valid in an IPv6 address.
const VM1_IP6 = fd00:::1;

// The rest of the file is valid.
const UPLINK0 = 0;
