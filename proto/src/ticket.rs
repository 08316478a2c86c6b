//! Probabilistic micropayment tickets (DESIGN §3).
