use gonext::generator;

struct Counter(u32);

impl Counter {
    #[generator]
    fn up_to(&self) -> impl Iterator<Item = u32> + '_ {
        yield_from!(0..self.0);
    }

    #[generator]
    fn into_steps(self, step: u32) -> impl Iterator<Item = u32> {
        let mut at = 0;
        while at < self.0 {
            yield_!(at);
            at += step;
        }
    }
}

fn main() {
    assert_eq!(Counter(3).up_to().sum::<u32>(), 3);
    assert_eq!(Counter(7).into_steps(3).collect::<Vec<_>>(), [0, 3, 6]);
}
