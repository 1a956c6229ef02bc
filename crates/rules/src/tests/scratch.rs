use proptest::prelude::*;
proptest! {
    #![proptest_config(ProptestConfig::with_cases(300000))]
    #[test]
    fn reals_match(bits in any::<u64>(), dec in -1e6f64..1e6, small in -1e-3f64..1e-3, big in 1e10f64..1e25, k in 0u32..6) {
        let db = super::support::open_db();
        let _ = k;
        for r in [f64::from_bits(bits), dec, (dec * 100.0).round() / 100.0, dec / 7.0, small, big, small * 3.0, big / 3.0] {
            let Ok(mine) = crate::value::real_to_text(r) else { continue };
            let t: String = db.query_row("select cast(? as text)", [r], |row| row.get(0)).unwrap();
            prop_assert_eq!(mine, t, "{:?}", r);
        }
    }
}
