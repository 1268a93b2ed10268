//! Test hosts in network namespaces of their own, each joined by a veth pair to one bridge
//! that the test process reaches too. Links are cut with blackhole routes inside a host's
//! namespace: packets from that host to the cut address are dropped, silently, as a broken
//! link would drop them, and a cut can be one-way. Needs root and `ip` (iproute2);
//! [`Lab::new`] says why when it cannot set up.

use std::process::Command;

/// Hosts `0..n`, removed (namespaces, veths, bridge) when dropped.
pub struct Lab {
    prefix: String,
    subnet: String,
    hosts: usize,
}

impl Lab {
    /// Creates `hosts` namespaces on a bridge. The names and the subnet come from the
    /// process ID, so a lab left behind by a killed run never collides with this one.
    pub fn new(hosts: usize) -> Result<Lab, String> {
        let pid = std::process::id();
        let mut lab = Lab {
            prefix: format!("cn{}", pid % 100_000),
            subnet: format!("10.{}.{}", 200 + pid % 50, (pid / 50) % 256),
            hosts: 0,
        };
        let bridge = lab.bridge();
        ip(&["link", "add", &bridge, "type", "bridge"])?;
        ip(&[
            "addr",
            "add",
            &format!("{}.1/24", lab.subnet),
            "dev",
            &bridge,
        ])?;
        ip(&["link", "set", &bridge, "up"])?;
        for i in 0..hosts {
            let ns = lab.netns(i);
            let veth = format!("{}v{i}", lab.prefix);
            ip(&["netns", "add", &ns])?;
            lab.hosts = i + 1;
            ip(&[
                "link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", &ns,
            ])?;
            ip(&["link", "set", &veth, "master", &bridge])?;
            ip(&["link", "set", &veth, "up"])?;
            let addr = format!("{}/24", lab.addr(i));
            ip(&["-n", &ns, "addr", "add", &addr, "dev", "eth0"])?;
            ip(&["-n", &ns, "link", "set", "eth0", "up"])?;
            ip(&["-n", &ns, "link", "set", "lo", "up"])?;
        }
        Ok(lab)
    }

    fn bridge(&self) -> String {
        format!("{}br", self.prefix)
    }

    /// The namespace of host `i`.
    pub fn netns(&self, i: usize) -> String {
        format!("{}-h{i}", self.prefix)
    }

    /// The address of host `i`.
    pub fn addr(&self, i: usize) -> String {
        format!("{}.{}", self.subnet, 11 + i)
    }

    /// Drops every packet host `from` sends to host `to` (one way).
    pub fn cut(&self, from: usize, to: usize) {
        let dest = format!("{}/32", self.addr(to));
        ip(&["-n", &self.netns(from), "route", "add", "blackhole", &dest])
            .unwrap_or_else(|e| panic!("cut {from} -> {to}: {e}"));
    }

    /// Undoes [`Lab::cut`].
    pub fn heal(&self, from: usize, to: usize) {
        let dest = format!("{}/32", self.addr(to));
        ip(&["-n", &self.netns(from), "route", "del", "blackhole", &dest])
            .unwrap_or_else(|e| panic!("heal {from} -> {to}: {e}"));
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for i in 0..self.hosts {
            let _ = ip(&["netns", "del", &self.netns(i)]);
        }
        let _ = ip(&["link", "del", &self.bridge()]);
    }
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run `ip`: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`ip {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}
