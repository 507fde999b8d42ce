// EXPECT: 4:1: error: file is not UTF-8 text (byte 0xff)
// The next line holds bytes that are not UTF-8.
const X = 1;
ÿþ

// The rest of the file is valid.
const UPLINK0 = 0;
