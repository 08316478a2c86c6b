//! The one median rule every bench reports by (the worker's `bench` and `benches/`): the middle value,
//! or the lower of the middle two for an even count, so a reported figure is always one that was
//! measured. A statistics crate would bring a dependency for these few lines.

/// The index in `values` of their median. `values` must not be empty (every bench runs at least once).
pub fn median_index<T: PartialOrd>(values: &[T]) -> usize {
    assert!(!values.is_empty(), "the median of no measurements");
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| {
        values[a]
            .partial_cmp(&values[b])
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    order[(values.len() - 1) / 2]
}

/// The median of `values` (see [`median_index`]).
pub fn median<T: PartialOrd + Copy>(values: &[T]) -> T {
    values[median_index(values)]
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn the_median_is_the_middle_value_or_the_lower_middle_one() {
        assert_eq!(median_index(&[0.9, 0.7, 1.1]), 0);
        assert_eq!(median_index(&[1.2, 0.8, 0.9, 1.0]), 2);
        assert_eq!(median_index(&[0.5]), 0);
        let ms = Duration::from_millis;
        assert_eq!(median(&[ms(30), ms(10), ms(20), ms(40)]), ms(20));
        assert_eq!(median(&[ms(5)]), ms(5));
    }
}
