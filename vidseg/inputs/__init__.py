"""Where frames come from: video files, images, folders and lists of them, cameras and network streams,
decoded into ``sources.Frame`` objects with their display times, audio and orientation."""
