//! libc time functions that see virtual time. STUB — being filled in.
