//! Sharding (DESIGN.md §11): `--shard I/N` splits an expansion along the connected components
//! of its task graph, so no task depends on a task of another shard, balanced by estimated
//! work (largest component first, onto the least loaded shard; ties by plan order), so an
//! existing CI matrix runs the shards side by side. Pure.

use std::fmt;
use std::str::FromStr;

use crate::expand::{Expansion, Task};

/// `I/N`: shard `I` (1-based) of `N`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

impl FromStr for Shard {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (i, n) = s.split_once('/').ok_or_else(|| format!("`{s}`: write I/N, e.g. 1/4"))?;
        let index: usize = i.trim().parse().map_err(|_| format!("`{s}`: `{i}` is not a number"))?;
        let count: usize = n.trim().parse().map_err(|_| format!("`{s}`: `{n}` is not a number"))?;
        if count == 0 || index == 0 || index > count {
            return Err(format!("`{s}`: I must be between 1 and N"));
        }
        Ok(Self { index, count })
    }
}

impl Shard {
    /// For clap.
    pub fn from_str_arg(s: &str) -> Result<Self, String> {
        s.parse()
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

fn find(parent: &mut [usize], mut i: usize) -> usize {
    while parent[i] != i {
        parent[i] = parent[parent[i]];
        i = parent[i];
    }
    i
}

/// For each task, the shard (0-based) it belongs to among `count`.
#[must_use]
pub fn assign<P>(tasks: &[Task<P>], count: usize, weight: impl Fn(&Task<P>) -> u64) -> Vec<usize> {
    let n = tasks.len();
    let mut parent: Vec<usize> = (0..n).collect();
    for (i, task) in tasks.iter().enumerate() {
        for &need in &task.needs {
            let (a, b) = (find(&mut parent, i), find(&mut parent, need));
            if a != b {
                parent[a.max(b)] = a.min(b);
            }
        }
    }
    // Components keyed by their smallest task index (plan order), with their weight.
    let mut components: Vec<(usize, u64)> = Vec::new();
    let mut slot_of_root: std::collections::HashMap<usize, usize> = std::collections::HashMap::new();
    let mut root_of = vec![0; n];
    for i in 0..n {
        let root = find(&mut parent, i);
        root_of[i] = root;
        let slot = *slot_of_root.entry(root).or_insert_with(|| {
            components.push((root, 0));
            components.len() - 1
        });
        components[slot].1 += weight(&tasks[i]).max(1);
    }
    components.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let mut load = vec![0u64; count.max(1)];
    let mut shard_of_root = std::collections::HashMap::new();
    for (root, w) in components {
        let (target, _) = load.iter().enumerate().min_by_key(|(i, l)| (**l, *i)).unwrap_or((0, &0));
        load[target] += w;
        shard_of_root.insert(root, target);
    }
    root_of.iter().map(|r| shard_of_root.get(r).copied().unwrap_or(0)).collect()
}

/// Keeps the tasks of `shard`, renumbering needs and job task lists.
#[must_use]
pub fn keep<P: Clone>(expansion: &Expansion<P>, shard: Shard, weight: impl Fn(&Task<P>) -> u64) -> Expansion<P> {
    let owner = assign(&expansion.tasks, shard.count, weight);
    let kept: Vec<usize> = (0..expansion.tasks.len()).filter(|&i| owner[i] == shard.index - 1).collect();
    let mut new_index = vec![usize::MAX; expansion.tasks.len()];
    for (new, &old) in kept.iter().enumerate() {
        new_index[old] = new;
    }
    let tasks = kept
        .iter()
        .map(|&old| {
            let mut t = expansion.tasks[old].clone();
            // Components never cross shards, so every need is kept.
            t.needs = t.needs.iter().map(|&n| new_index[n]).filter(|&n| n != usize::MAX).collect();
            t
        })
        .collect();
    let jobs = expansion
        .jobs
        .iter()
        .map(|j| {
            let mut j = j.clone();
            j.tasks = j.tasks.iter().map(|&t| new_index[t]).filter(|&t| t != usize::MAX).collect();
            j
        })
        .collect();
    Expansion { tasks, jobs }
}
