//! JavaScript migrations (`pb_migrations`): applied in file-name order, recorded in
//! `_migrations`, all pending ones in one transaction.
