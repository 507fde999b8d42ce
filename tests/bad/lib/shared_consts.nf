// Helper for duplicate_const_imported.nf: a valid file of shared constants.
const UPLINK = 0;
const HOST_IP = 192.168.1.1;
