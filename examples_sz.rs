fn main(){ println!("Value {}", std::mem::size_of::<serde_json::Value>()); println!("Map {}", std::mem::size_of::<serde_json::Map<String, serde_json::Value>>()); }
