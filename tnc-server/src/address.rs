//! How a peer address is counted by the per-address limits (the session
//! rate, the pending pool, the password guard): IPv6 per /64, since one host
//! holds a whole /64; IPv4-mapped IPv6 as the IPv4 address it is.

use std::net::{IpAddr, Ipv6Addr};

pub fn counted_as(peer: IpAddr) -> IpAddr {
    match peer {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::counted_as;

    #[test]
    fn a_slash_64_is_one_address() {
        let a = counted_as("2001:db8:1:2::10".parse().unwrap());
        assert_eq!(a, counted_as("2001:db8:1:2:ffff::1".parse().unwrap()));
        assert_ne!(a, counted_as("2001:db8:1:3::10".parse().unwrap()));
        assert_eq!(
            counted_as("::ffff:192.0.2.1".parse().unwrap()),
            counted_as("192.0.2.1".parse().unwrap())
        );
    }
}
