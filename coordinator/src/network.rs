//! The network a peer's address belongs to, as placement and the diversity boost see it (PROTOCOL
//! §6.9): its IPv4 /24 or its IPv6 /64. Copies on one network share its fate (one operator, one
//! uplink, one building), so a second copy there adds less than a copy elsewhere.

use std::fmt;
use std::net::IpAddr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Network {
    /// The first three octets of an IPv4 address.
    V4([u8; 3]),
    /// The first eight bytes of an IPv6 address.
    V6([u8; 8]),
}

impl Network {
    /// The network of `addr`; an IPv4-mapped IPv6 address is its IPv4 address.
    pub fn of(addr: IpAddr) -> Self {
        match addr {
            IpAddr::V4(v4) => {
                let o = v4.octets();
                Network::V4([o[0], o[1], o[2]])
            }
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Network::of(IpAddr::V4(v4)),
                None => {
                    let mut prefix = [0; 8];
                    prefix.copy_from_slice(&v6.octets()[..8]);
                    Network::V6(prefix)
                }
            },
        }
    }
}

impl Network {
    /// Its wire form (`RemoteWorker.network`): the 3 bytes of a /24 or the 8 of a /64.
    pub fn to_wire(self) -> Vec<u8> {
        match self {
            Network::V4(p) => p.to_vec(),
            Network::V6(p) => p.to_vec(),
        }
    }

    /// The network a wire form names; `None` for empty or any other length.
    pub fn from_wire(bytes: &[u8]) -> Option<Self> {
        match bytes.len() {
            3 => bytes.try_into().ok().map(Network::V4),
            8 => bytes.try_into().ok().map(Network::V6),
            _ => None,
        }
    }
}

impl fmt::Display for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Network::V4([a, b, c]) => write!(f, "{a}.{b}.{c}.0/24"),
            Network::V6(p) => {
                let mut octets = [0u8; 16];
                octets[..8].copy_from_slice(p);
                write!(f, "{}/64", std::net::Ipv6Addr::from(octets))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_fall_into_their_24_or_64() {
        let net = |s: &str| Network::of(s.parse().expect("address"));
        assert_eq!(net("10.1.2.3"), net("10.1.2.250"));
        assert_ne!(net("10.1.2.3"), net("10.1.3.3"));
        assert_eq!(net("::ffff:10.1.2.3"), net("10.1.2.9"));
        assert_eq!(net("2001:db8:1:2::1"), net("2001:db8:1:2:ffff::9"));
        assert_ne!(net("2001:db8:1:2::1"), net("2001:db8:1:3::1"));
        assert_eq!(net("192.0.2.77").to_string(), "192.0.2.0/24");
        assert_eq!(net("2001:db8:1:2::1").to_string(), "2001:db8:1:2::/64");
    }

    #[test]
    fn wire_form_round_trips_and_refuses_other_lengths() {
        for addr in ["10.1.2.3", "2001:db8:1:2::1"] {
            let net = Network::of(addr.parse().expect("address"));
            assert_eq!(Network::from_wire(&net.to_wire()), Some(net));
        }
        assert_eq!(Network::from_wire(&[]), None);
        assert_eq!(Network::from_wire(&[1; 4]), None);
    }
}
