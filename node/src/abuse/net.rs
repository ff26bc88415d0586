//! How client addresses are grouped.
//!
//! Bans and per-address counters key an IPv4 address by itself and an IPv6 address by
//! its /64 (one customer site gets a whole /64, so banning one address of it is
//! pointless). "Networks" for the spread heuristic and for trusted logins are coarser:
//! an IPv4 /24, an IPv6 /64.

use std::net::IpAddr;

/// The key bans and per-address counters use: `203.0.113.7` or `2001:db8:1:2::/64`.
pub fn address_key(ip: IpAddr) -> String {
    match canonical(ip) {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("{}/64", prefix64(v6)),
    }
}

/// Prefix of the keys of gate denials. Login bans and gate denials of one address are
/// separate entries, so that neither replaces the other: an address that presents stale
/// tokens can still log in to get fresh ones, and a login ban does not end early
/// because the same address was later denied on the gate.
pub const GATE_PREFIX: &str = "gate:";

/// The key of a gate denial of `ip`: `gate:203.0.113.7`.
pub fn gate_key(ip: IpAddr) -> String {
    format!("{GATE_PREFIX}{}", address_key(ip))
}

/// The network an address belongs to: `203.0.113.0/24` or `2001:db8:1:2::/64`.
pub fn network_key(ip: IpAddr) -> String {
    match canonical(ip) {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            format!("{a}.{b}.{c}.0/24")
        }
        IpAddr::V6(v6) => format!("{}/64", prefix64(v6)),
    }
}

/// IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`) count as the IPv4 address they carry.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn prefix64(v6: std::net::Ipv6Addr) -> std::net::Ipv6Addr {
    let bits = u128::from(v6) & !((1u128 << 64) - 1);
    std::net::Ipv6Addr::from(bits)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("test address")
    }

    #[test]
    fn ipv4_keys_by_address_and_groups_by_24() {
        assert_eq!(address_key(ip("203.0.113.7")), "203.0.113.7");
        assert_eq!(network_key(ip("203.0.113.7")), "203.0.113.0/24");
        assert_eq!(address_key(ip("::ffff:203.0.113.7")), "203.0.113.7");
    }

    #[test]
    fn ipv6_keys_and_groups_by_64() {
        let a = ip("2001:db8:1:2:aaaa::1");
        let b = ip("2001:db8:1:2:bbbb::9");
        assert_eq!(address_key(a), "2001:db8:1:2::/64");
        assert_eq!(address_key(a), address_key(b));
        assert_eq!(network_key(b), "2001:db8:1:2::/64");
        assert_ne!(address_key(ip("2001:db8:1:3::1")), address_key(a));
    }
}
