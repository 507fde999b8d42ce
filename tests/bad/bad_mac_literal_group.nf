// EXPECT: 3:17: error: bad MAC address '02:00:00:00:001:02'
// A MAC address group of three hex digits.
const VM1_MAC = 02:00:00:00:001:02;

// The rest of the file is valid.
const UPLINK0 = 0;
